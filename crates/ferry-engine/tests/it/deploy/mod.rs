//! Deploys end to end: strategies, rollback, crash recovery, zero downtime.
