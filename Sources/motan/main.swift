print("motan")
