// The read-side Store conformance suite on the S3 store, against the test S3 server (S3_TEST_*
// variables, as the client tests).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>

#include "../conformance/store_conformance.h"
#include "dest/s3_client.h"

namespace {
std::string need_env(const char* n) {
  const char* v = std::getenv(n);
  REQUIRE_MESSAGE(v, "set ", n, " (tests/integration/test_s3_client.sh does)");
  return v;
}
}  // namespace

TEST_CASE("store conformance: s3") {
  const std::string bucket = need_env("S3_TEST_BUCKET"), endpoint = need_env("S3_TEST_ENDPOINT");
  ::setenv("AWS_ACCESS_KEY_ID", need_env("S3_TEST_KEY").c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", need_env("S3_TEST_SECRET").c_str(), 1);
  auto client = std::make_shared<pbackup::LazyS3Client>(endpoint, "");
  conformance::StoreTarget t;
  t.store = pbackup::make_s3_store(bucket, {endpoint, ""});
  t.dir = "store-conformance-" + std::to_string(::getpid());
  t.put = [client, bucket](const std::string& name, const std::string& bytes) {
    client->get().put_object(bucket, name, bytes);
  };
  conformance::run_store(t);
  for (auto& o : client->get().list_objects(bucket, t.dir + "/")) client->get().delete_object(bucket, o.key);
}
