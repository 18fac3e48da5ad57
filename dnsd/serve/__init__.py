"""Socket adapters: move bytes between sandbox sockets and the pure answer core."""
