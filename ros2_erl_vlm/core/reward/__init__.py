"""The learned reward: the ensemble, the RbRL losses, segment selection, the reward learner."""
