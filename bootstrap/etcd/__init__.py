"""etcd: membership and health of the cluster kbootstrap runs (bootstrap/etcd/members.py)."""
