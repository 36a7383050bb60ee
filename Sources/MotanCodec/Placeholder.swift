public enum MotanCodecPlaceholder {}
