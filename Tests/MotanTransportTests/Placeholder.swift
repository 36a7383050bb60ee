// Transport tests land with the transport.
