package warehouse

// SetDDLHook makes every change to a view (create, replace, delete)
// call f first with what and which, so tests can count them.
func (w *Warehouse) SetDDLHook(f func(what string)) { w.onDDL = f }
