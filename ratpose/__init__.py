"""ratpose: markerless 3D pose of rats on the neural clock, in a DataJoint pipeline."""

__version__ = "0.1.0"
