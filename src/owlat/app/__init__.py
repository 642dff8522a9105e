"""owlat.app: Owlat's email-marketing backend, written on owlat.runtime."""
