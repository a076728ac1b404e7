"""Node PKI: master key and encrypted key storage, node CA, certificates, CRL, TSA key."""
