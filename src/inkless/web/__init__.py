"""The web face of a node: /api/v1 (OpenAPI) and the HTML UI."""
