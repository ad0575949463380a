// The age framing (src/crypto/age.cpp) against published test vectors (the age project's
// testkit, tests/unit/data/age_testkit: BSD-3-Clause, from FiloSottile/age testdata/testkit)
// and round trips of its own: bech32, base64, header, STREAM chunks.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "crypto/age.h"
#include "pbackup/sha256.h"

namespace age = pbackup::age;

namespace {

struct Vector {
  std::string expect, payload_sha, identity, passphrase;
  std::string file;
};

Vector load_vector(const std::string& name) {
  std::ifstream in(std::string(PBACKUP_TEST_DATA) + "/age_testkit/" + name, std::ios::binary);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  Vector v;
  size_t pos = 0;
  while (true) {
    size_t nl = all.find('\n', pos);
    REQUIRE(nl != std::string::npos);
    std::string line = all.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) break;
    auto colon = line.find(": ");
    std::string key = line.substr(0, colon), val = line.substr(colon + 2);
    if (key == "expect") v.expect = val;
    if (key == "payload") v.payload_sha = val;
    if (key == "identity") v.identity = val;
    if (key == "passphrase") v.passphrase = val;
  }
  v.file = all.substr(pos);
  return v;
}

std::vector<age::Identity> identities_of(const Vector& v) {
  if (!v.passphrase.empty())
    return {age::passphrase_identity(std::make_shared<age::Secret>(v.passphrase.data(), v.passphrase.size()))};
  return age::parse_identity_file(v.identity + "\n", "vector");
}

}  // namespace

TEST_CASE("age: testkit vectors that decrypt (X25519, scrypt, a full last chunk)") {
  for (const char* name : {"x25519", "scrypt", "stream_last_chunk_full"}) {
    CAPTURE(name);
    Vector v = load_vector(name);
    REQUIRE(v.expect == "success");
    std::string plain = age::decrypt_buffer(v.file, identities_of(v));
    CHECK(pbackup::sha256_hex(plain) == v.payload_sha);
  }
}

TEST_CASE("age: testkit vectors that must fail in the header or the payload") {
  struct Case {
    const char* name;
    bool header;
  };
  for (Case c : {Case{"x25519_bad_tag", true}, Case{"hmac_garbage", true}, Case{"stream_bad_tag_second_chunk", false},
                 Case{"stream_two_final_chunks", false}}) {
    CAPTURE(c.name);
    Vector v = load_vector(c.name);
    auto ids = identities_of(v);
    if (c.header) {
      CHECK_THROWS_AS(age::open_header(v.file, ids), age::Error);
    } else {
      CHECK_NOTHROW(age::open_header(v.file, ids));
      CHECK_THROWS_AS(age::decrypt_buffer(v.file, ids), age::Error);
    }
  }
}

TEST_CASE("age: bech32 keys round trip, and a flipped character is refused") {
  age::Secret id_text = age::generate_identity_text();
  auto ids = age::parse_identity_file(std::string(id_text.view()) + "\n", "t");
  REQUIRE(ids.size() == 1);
  std::string pub = age::public_key_of(ids[0]);
  CHECK(pub.rfind("age1", 0) == 0);
  CHECK(pub.size() == 62);
  age::Recipient r = age::parse_recipient(pub);
  std::string bad = pub;
  bad[10] = bad[10] == 'q' ? 'p' : 'q';
  CHECK_THROWS_AS(age::parse_recipient(bad), age::Error);
  // a secret key (or a passphrase) given as a recipient by mistake is never echoed in the error
  for (std::string secret : {std::string(id_text.view()), std::string("correct horse battery staple")}) {
    std::string what;
    try {
      age::parse_recipient(secret);
    } catch (const age::Error& e) {
      what = e.what();
    }
    CHECK(!what.empty());
    CHECK(what.find(secret.substr(0, 20)) == std::string::npos);
    CHECK(what.find(secret.substr(secret.size() - 12)) == std::string::npos);
  }
  // the published example from the age README decodes
  CHECK_NOTHROW(age::parse_recipient("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"));
  CHECK_THROWS_AS(age::parse_identity_file("# only a comment\n", "t"), age::Error);
}

TEST_CASE("age: base64 is canonical and unpadded") {
  const uint8_t b[] = {1, 2, 3, 4};
  std::string e = age::b64_encode(b, 4);
  CHECK(e == "AQIDBA");
  CHECK(age::b64_decode(e)->size() == 4);
  CHECK(!age::b64_decode("AQIDBA=="));
  CHECK(!age::b64_decode("AQIDBB"));  // non-zero padding bits
}

TEST_CASE("age: encrypt and decrypt, several recipients, wrong key, STREAM sizes") {
  age::Secret a = age::generate_identity_text(), b = age::generate_identity_text(), c = age::generate_identity_text();
  auto ia = age::parse_identity_file(std::string(a.view()), "a");
  auto ib = age::parse_identity_file(std::string(b.view()), "b");
  auto ic = age::parse_identity_file(std::string(c.view()), "c");
  std::vector<age::Recipient> rs = {age::parse_recipient(age::public_key_of(ia[0])), age::parse_recipient(age::public_key_of(ib[0]))};
  for (size_t n : {size_t(0), size_t(1), size_t(65536), size_t(65537), size_t(3 * 65536 + 5)}) {
    CAPTURE(n);
    std::string plain(n, 'x');
    for (size_t i = 0; i < n; ++i) plain[i] = static_cast<char>(i * 31 + 7);
    std::string f = age::encrypt_buffer(rs, plain);
    CHECK(age::decrypt_buffer(f, ia) == plain);
    CHECK(age::decrypt_buffer(f, ib) == plain);
    CHECK_THROWS_AS(age::decrypt_buffer(f, ic), age::Error);
    auto o = age::open_header(f, ia);
    CHECK(f.size() - o.prefix == age::sealed_size(n));
    CHECK(age::plain_size(f.size() - o.prefix) == n);
    if (n) {
      std::string t = f;
      t[t.size() - 1] ^= 1;
      CHECK_THROWS_AS(age::decrypt_buffer(t, ia), age::Error);
      CHECK_THROWS_AS(age::decrypt_buffer(f.substr(0, f.size() - 1), ia), age::Error);
    }
  }
  CHECK(!age::plain_size(age::kSealedChunk + age::kTag));  // an empty last chunk after a full one
}

TEST_CASE("age: scrypt round trip and a wrong passphrase") {
  auto pass = std::make_shared<age::Secret>("correct horse", 13);
  auto wrong = std::make_shared<age::Secret>("wrong horse", 11);
  std::string f = age::encrypt_buffer({age::passphrase_recipient(pass, 10)}, "hello");
  CHECK(age::decrypt_buffer(f, {age::passphrase_identity(pass)}) == "hello");
  CHECK_THROWS_AS(age::decrypt_buffer(f, {age::passphrase_identity(wrong)}), age::Error);
}

TEST_CASE("age: a test seed makes headers repeatable; no seed makes them differ") {
  auto ids = age::parse_identity_file("AGE-SECRET-KEY-1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4QX3S7F6\n", "t");
  std::vector<age::Recipient> rs = {age::parse_recipient(age::public_key_of(ids[0]))};
  age::set_test_seed("seed");
  std::string one = age::encrypt_buffer(rs, "abc");
  age::set_test_seed("seed");
  std::string two = age::encrypt_buffer(rs, "abc");
  age::set_test_seed("");
  std::string three = age::encrypt_buffer(rs, "abc");
  CHECK(one == two);
  CHECK(one != three);
  CHECK(age::decrypt_buffer(one, ids) == "abc");
}
