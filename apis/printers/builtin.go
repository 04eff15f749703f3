package printers

func registerBuiltin(s *Set) {}
