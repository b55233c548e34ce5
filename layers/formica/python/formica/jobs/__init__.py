"""The job-definition language: models, parsing, validation and templates."""
