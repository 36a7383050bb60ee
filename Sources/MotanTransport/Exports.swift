// An application that embeds the transport needs the loop group, addresses and simple values too;
// one import should be enough.
@_exported import MotanCodec
@_exported import MotanLoop
