//! Deterministic generated people, shared by both simulators so that "the same person" seeded
//! on each side has the same email and the same base data (and a chosen share has conflicts).

/// The options of the generated HubSpot select property `industry_segment`: (value, label).
/// The MailerLite side stores the label in its text field `industry`.
pub const INDUSTRY_OPTIONS: [(&str, &str); 5] = [
    ("saas", "SaaS"),
    ("retail", "Retail"),
    ("manufacturing", "Manufacturing"),
    ("healthcare", "Healthcare"),
    ("finance", "Financial services"),
];

/// The options of the generated HubSpot checkbox property `interests`: (value, label).
pub const INTEREST_OPTIONS: [(&str, &str); 4] = [
    ("webinars", "Webinars"),
    ("product_news", "Product news"),
    ("events", "Events"),
    ("case_studies", "Case studies"),
];

const FIRST: [&str; 16] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Margaret",
    "Ken",
    "Radia",
    "Linus",
    "Tim",
    "Hedy",
    "Dennis",
    "Katherine",
];
const LAST: [&str; 16] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "McCarthy",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Torvalds",
    "Berners-Lee",
    "Lamarr",
    "Ritchie",
    "Johnson",
];
const CITIES: [&str; 8] = ["Tallinn", "Berlin", "Lisbon", "Austin", "Toronto", "Dublin", "Vilnius", "Oslo"];
const COMPANIES: [&str; 8] = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka"];

/// One generated person. Everything is a pure function of `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub index: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub city: String,
    pub phone: String,
    /// Index into [`INDUSTRY_OPTIONS`].
    pub industry: usize,
    /// Indexes into [`INTEREST_OPTIONS`] (possibly empty).
    pub interests: Vec<usize>,
    pub employees: u32,
    /// `YYYY-MM-DD`.
    pub signup_date: String,
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The person with this index; their email is `person{index}@example.com`.
pub fn person(index: u64) -> Person {
    let h = mix(index);
    let interests = (0..INTEREST_OPTIONS.len()).filter(|i| (h >> (20 + i)) & 1 == 1).collect();
    Person {
        index,
        email: format!("person{index}@example.com"),
        first_name: FIRST[(h % 16) as usize].to_string(),
        last_name: LAST[((h >> 4) % 16) as usize].to_string(),
        company: COMPANIES[((h >> 8) % 8) as usize].to_string(),
        city: CITIES[((h >> 12) % 8) as usize].to_string(),
        phone: format!("+1555{:07}", index % 10_000_000),
        industry: ((h >> 16) % INDUSTRY_OPTIONS.len() as u64) as usize,
        interests,
        employees: ((h >> 32) % 5000) as u32 + 1,
        signup_date: format!("20{:02}-{:02}-{:02}", 18 + (h >> 40) % 8, 1 + (h >> 44) % 12, 1 + (h >> 48) % 28),
    }
}

/// The same person with a different first name and city: seeded on one side only, this makes
/// a field conflict for the initial sync to resolve.
pub fn conflicting(p: &Person) -> Person {
    let h = mix(p.index ^ 0xC0FF_EE00);
    let mut q = p.clone();
    q.first_name = format!("{}-{}", p.first_name, ["Alt", "Other", "New", "Prime"][(h % 4) as usize]);
    q.city = CITIES[((h >> 8) as usize + 1 + CITIES.iter().position(|c| *c == p.city).unwrap_or(0)) % CITIES.len()]
        .to_string();
    q
}

/// A seeding run's salt for one trait: `seed` 0 keeps `salt` as it is, so seeding without a seed
/// picks the same people as before; another seed picks an independent share.
pub fn salted(salt: u64, seed: u64) -> u64 {
    salt.wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A deterministic "random" choice for person `index` under salt `salt`: true with probability `rate`.
pub fn chosen(index: u64, salt: u64, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    (mix(index.wrapping_mul(31).wrapping_add(salt)) % 1_000_000) as f64 / 1_000_000.0 < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_are_deterministic_and_distinct() {
        assert_eq!(person(42), person(42));
        assert_ne!(person(42).email, person(43).email);
        assert_ne!(conflicting(&person(5)).first_name, person(5).first_name);
        assert_ne!(conflicting(&person(5)).city, person(5).city);
    }

    #[test]
    fn chosen_is_close_to_the_rate() {
        let n = (0..10_000).filter(|i| chosen(*i, 3, 0.2)).count();
        assert!((1700..2300).contains(&n), "{n}");
    }

    #[test]
    fn a_seed_picks_another_share() {
        assert_eq!(salted(7, 0), 7);
        let a: Vec<u64> = (0..1000).filter(|i| chosen(*i, salted(7, 0), 0.5)).collect();
        let b: Vec<u64> = (0..1000).filter(|i| chosen(*i, salted(7, 1), 0.5)).collect();
        assert_ne!(a, b);
    }
}
