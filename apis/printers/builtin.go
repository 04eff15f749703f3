package printers

// registerBuiltin adds upstream's table columns for the built-in kinds. Kinds not added here
// (Role, ClusterRole, LimitRange, CustomResourceDefinition, ...) print upstream's default Name /
// Created At columns.
func registerBuiltin(s *Set) {
	registerCore(s)
	registerApps(s)
	registerBatch(s)
	registerAutoscaling(s)
	registerNetworking(s)
	registerStorage(s)
	registerCluster(s)
	registerAdmission(s)
	registerFlowControl(s)
	registerResource(s)
	registerNewer(s)
	applyDescriptions(s)
}
