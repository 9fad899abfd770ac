"""The front: `runplane runs` (runs.py); `runplane demo` lives in the package's demo/."""
