"""kbootstrap lab: real Debian machines on one host via systemd-nspawn (see docs/lab.md)."""
