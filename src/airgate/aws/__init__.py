"""The AWS wire: botocore's service model, routing, validation and rest-json."""
