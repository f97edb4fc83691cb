"""The reconciler: state reader, diff, plan, apply, after-apply state, revisions."""
