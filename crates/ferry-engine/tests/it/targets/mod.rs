//! The docker and ssh deploy targets against a real Docker engine and real sshd.
