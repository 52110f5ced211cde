#!/bin/bash
# A service job of llmsweep: runs the service wrapper given as arguments on the allocated
# node. exec, so SLURM's signals (scancel, the time limit) reach the service itself.
exec "$@"
