"""hmsync's own schemathesis check, loaded through `hooks` in schemathesis.toml.

schemathesis.toml lets `positive_data_acceptance` accept a 422 from the few operations whose
checks go beyond what a JSON schema can say. This check keeps that narrow: a schema-valid
request may only be refused (422) for those reasons, each named in the error body's `problems`.
"""

import re

import schemathesis

# How the mappings hold together (a company mapping flows HubSpot → MailerLite, one writer per
# target field, the email is never mapped, a direction agrees with the connection's) and, once
# the fields were read, whether both fields exist and convert: problems of these fields only.
MAPPING_FIELD = re.compile(r"config\.mappings\[\d+\]\.(hubspot_property|mailerlite_field|direction|conflict_winner)")


def mapping_problem(problem: dict) -> bool:
    return bool(MAPPING_FIELD.fullmatch(problem.get("field", "")))


def mapping_or_missing_source(problem: dict) -> bool:
    """The preview also reads the rule's groups or segments, which MailerLite may not have."""
    field = problem.get("field", "")
    return mapping_problem(problem) or field in ("config.mailerlite_rule.group_ids", "config.mailerlite_rule.segment_ids")


def refused_by_the_app(problem: dict) -> bool:
    """A well-formed token or key that HubSpot or MailerLite refused when it was checked (the
    message is the app's answer, e.g. `HubSpot refused the credentials: ...`)."""
    field = problem.get("field", "")
    message = problem.get("message", "")
    return field in ("hubspot.access_token", "hubspot.refresh_token", "mailerlite_api_key") and message.startswith(
        ("HubSpot ", "MailerLite ")
    )


def option_mapping_problem(problem: dict) -> bool:
    """Option values need a property and field the apps have, that convert, with options."""
    return problem.get("field", "") in ("mapping.hubspot_property", "mapping.mailerlite_field")


ALLOWED_422 = {
    "POST /connections": mapping_problem,
    "PATCH /connections/{id}": mapping_problem,
    "POST /connections/{id}/preview": mapping_or_missing_source,
    "PUT /connections/{id}/credentials": refused_by_the_app,
    "POST /connections/{id}/fields/options": option_mapping_problem,
    "POST /connections/{id}/config/check": mapping_problem,
}


@schemathesis.check
def unprocessable_only_for_what_no_schema_can_say(ctx, response, case):
    """A schema-valid request refused with 422 names only problems the document cannot express."""
    meta = case.meta
    allowed = ALLOWED_422.get(case.operation.label)
    if response.status_code != 422 or allowed is None or meta is None or not meta.generation.mode.is_positive:
        return None
    try:
        problems = response.json().get("problems") or []
    except ValueError:
        problems = []
    other = [p for p in problems if not allowed(p)]
    if not problems or other:
        raise AssertionError(
            "Schema-valid data refused for a reason the document could state: "
            + (", ".join(f"{p.get('field')}: {p.get('message')}" for p in other) or response.text)
        )
    return None
