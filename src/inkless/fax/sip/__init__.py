"""The media side of a SIP fax call: G.711 over RTP, T.38 over UDPTL, fax tone watch, one call's session."""
