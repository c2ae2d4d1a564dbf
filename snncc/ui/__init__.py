"""Console output shared by the verification ladder and the application (progress bars,
agreement tables). Imports the metrics; the ladder and the application import it."""
