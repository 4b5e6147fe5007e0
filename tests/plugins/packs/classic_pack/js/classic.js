// Served under /extensions/classic_pack/classic.js; the loader lists it.
window.__classicPackLoaded = true;
