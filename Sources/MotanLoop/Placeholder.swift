public enum MotanLoopPlaceholder {}
