"""Record types, their JSON Schemas and the page registry format."""
