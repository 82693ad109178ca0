"""Reading the user's folder: scanning, decoding, thumbnails, the bundled demo."""
