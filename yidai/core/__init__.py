"""The ground layer: settings, errors, data contracts, warehouse access, the versioned
publish store and the catalogue of products and models.  It imports nothing else of Yidai;
every other package may import it."""
