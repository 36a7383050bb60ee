// Transport layer: server and client endpoints over MotanLoop.
