"""The Ansible transport: playbooks/ run by ansible-runner, whose action plugin runs our phases."""
