@_exported import struct MotanCodec.MessageFlags
@_exported import struct MotanCodec.Meta
@_exported import enum MotanCodec.MotanCodecError
@_exported import struct MotanCodec.MotanErrorInfo
@_exported import struct MotanCodec.SimpleBodyShape
@_exported import struct MotanCodec.SimplePair
@_exported import enum MotanCodec.SimpleValue
@_exported import enum MotanLoop.CloseReason
@_exported import enum MotanLoop.LoopError
@_exported import struct MotanLoop.TCPAddress
@_exported import struct MotanLoop.UVError
// The names an application needs to use the transport's public API, and no more: importing the
// loop and codec modules wholesale would put every low-level name into the application's
// namespace. Code that works with frames or sockets directly imports MotanCodec or MotanLoop.
@_exported import class MotanLoop.UVEventLoop
@_exported import class MotanLoop.UVEventLoopGroup
