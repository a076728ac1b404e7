"""Federation between nodes: RFC 9421 request signatures, signed node documents and the signed HTTP client.

Used by the peer directory (``inkless.directory.peers``) and by delivery (``inkless.delivery``);
it imports neither.
"""
