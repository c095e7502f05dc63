"""Ratings: the rater interface, the rating dataset, quality against truth, the rater's inbox."""
