// The destination conformance suite on the cloud destination, against the test S3 server
// (S3_TEST_* variables, as the client tests): one multipart object, and one object per fragment.
#include <doctest/doctest.h>

#include <cstdlib>

#include "../conformance/destination_conformance.h"
#include "dest/s3_client.h"

namespace {
std::string need(const char* n) {
  const char* v = std::getenv(n);
  REQUIRE_MESSAGE(v, "set ", n, " (tests/integration/test_s3_client.sh does)");
  return v;
}

conformance::Target cloud(const std::string& prefix, uint64_t split) {
  std::string bucket = need("S3_TEST_BUCKET");
  ::setenv("AWS_ACCESS_KEY_ID", need("S3_TEST_KEY").c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", need("S3_TEST_SECRET").c_str(), 1);
  conformance::Target t;
  t.spec.type = "cloud";
  t.spec.output_dir = "s3://" + bucket + "/" + prefix;
  t.spec.split_bytes = split;
  t.spec.part_bytes = 5u << 20;
  t.spec.s3_endpoint = need("S3_TEST_ENDPOINT");
  auto client = std::make_shared<pbackup::LazyS3Client>(t.spec.s3_endpoint, "");
  t.read = [client, bucket, prefix](const std::string& name) {
    return client->get().get_object(bucket, prefix + "/" + name);
  };
  t.exists = [client, bucket, prefix](const std::string& name) {
    return client->get().head_object(bucket, prefix + "/" + name).has_value();
  };
  return t;
}
}  // namespace

TEST_CASE("destination conformance: cloud, one multipart object") {
  conformance::run(cloud("conformance-mp", 0), "cloud");
}

TEST_CASE("destination conformance: cloud, one object per fragment") {
  conformance::run(cloud("conformance-split", 5u << 20), "cloud-split");
}
