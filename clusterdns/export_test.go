package clusterdns

// UpstreamsFor exposes upstreamsFor to the tests.
var UpstreamsFor = upstreamsFor
