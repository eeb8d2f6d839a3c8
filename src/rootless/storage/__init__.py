"""Storage drivers: how a container's root filesystem is made from the image's layers."""
