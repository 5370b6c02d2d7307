"""Human review: reviewers' decisions per field, the record's current version, and grounding corrections."""
