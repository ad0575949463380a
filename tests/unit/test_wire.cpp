// Every message that crosses ranks, round-tripped through its one field list (pbackup/wire.h),
// with a non-default value in every field: a field left out of a list comes back default and
// fails here, not as a silent skew between real ranks.
#include <doctest/doctest.h>

#include <limits>

#include "core/age_source.h"
#include "core/messages.h"
#include "core/sight.h"
#include "dest/s3_receipt.h"
#include "format/zip_facts.h"
#include "pbackup/source.h"
#include "pbackup/wire.h"

using namespace pbackup;

namespace {

template <class T>
T round_trip(const T& t) {
  std::string bytes = to_wire(t);
  T back = from_wire<T>(bytes);
  // every byte is needed: a shorter message throws
  CHECK_THROWS(from_wire<T>(std::string_view(bytes).substr(0, bytes.size() - 1)));
  CHECK_THROWS(from_wire<T>(bytes + "x"));  // and trailing bytes are an error too
  return back;
}

Entry sample_entry(uint32_t k) {
  Entry e;
  e.path = "root/dir/file" + std::to_string(k);
  e.link = "target" + std::to_string(k);
  e.owner = "user" + std::to_string(k) + ":group";
  e.xattrs = std::string("30 SCHILY.xattr.user.k=v\0\xff\n", 32) + std::to_string(k);
  e.sparse = "sparse-map-" + std::to_string(k);
  e.size = (uint64_t{1} << 40) + k;
  e.mtime_sec = -1234567890123 - k;
  e.mtime_nsec = 999999999 - k;
  e.ctime_sec = 1700000000 + k;
  e.ctime_nsec = 123456789 + k;
  e.mode = 04755;
  e.uid = 1001 + k;
  e.gid = 2002 + k;
  e.nlink = 3 + k;
  e.dev = 0xfedcba9876543210ULL + k;
  e.ino = 0x0123456789abcdefULL + k;
  e.root = 7 + k;
  e.type = EntryType::Hardlink;
  return e;
}

Piece sample_piece(uint32_t k) {
  return Piece{k + 5, true, true, (uint64_t{1} << 35) + k, (uint64_t{1} << 33) + k};
}

BlockJob sample_job(uint64_t id) {
  BlockJob j;
  j.block.id = id;
  j.block.raw_bytes = 123456789 + id;
  j.block.raw_offset = (uint64_t{1} << 41) + id;
  for (uint32_t k = 0; k < 3; ++k) {
    j.block.pieces.push_back(sample_piece(k));
    j.entries.push_back(sample_entry(k));
    j.disk_paths.push_back("/data/root/dir/file" + std::to_string(k));
  }
  j.block.pieces[1].header = false;  // the two flags travel independently
  j.block.pieces[2].last = false;
  return j;
}

UnitInfo sample_unit(uint64_t k) {
  return UnitInfo{k + 11, static_cast<uint32_t>(k + 12), k + 13, k + 14, std::string(64, 'a'), std::string("\0extra\xff", 7)};
}

RestoredEntry sample_restored() {
  RestoredEntry e;
  e.path = "a/b/c";
  e.link = "../d";
  e.type = '2';
  e.mode = 01777;
  e.uid = 65534;
  e.gid = 65533;
  e.mtime = -5;
  e.mtime_nsec = 123456789;
  e.done = true;
  e.xattrs = "24 SCHILY.xattr.user.a=b\n";
  return e;
}

}  // namespace

TEST_CASE("wire: Entry and Root") {
  Entry e = sample_entry(1);
  CHECK(round_trip(e) == e);
  Root r{"/data/src", "src"};
  CHECK(round_trip(r) == r);
}

TEST_CASE("wire: Piece flags travel independently") {
  for (bool header : {false, true})
    for (bool last : {false, true}) {
      Piece p{9, header, last, 10, 11};
      CHECK(round_trip(p) == p);
    }
}

TEST_CASE("wire: BlockJob and its Block") {
  BlockJob j = sample_job(42);
  CHECK(round_trip(j) == j);
  CHECK(round_trip(j.block) == j.block);
  // the three lists are parallel: a job whose lists differ is refused
  BlockJob bad = j;
  bad.disk_paths.pop_back();
  CHECK_THROWS(from_wire<BlockJob>(to_wire(bad)));
}

TEST_CASE("wire: UnitInfo") {
  UnitInfo u = sample_unit(3);
  CHECK(round_trip(u) == u);
}

TEST_CASE("wire: RestoredEntry") {
  RestoredEntry e = sample_restored();
  CHECK(round_trip(e) == e);
}

TEST_CASE("wire: PartFact, one after another in UnitInfo::extra") {
  PartFact a{17, 4096, true, false, 0xdeadbeef, (uint64_t{1} << 36) + 1, (uint64_t{1} << 37) + 2};
  PartFact b{18, PartFact::kNoHeader, false, true, 0x12345678, 5, 6};
  CHECK(round_trip(a) == a);
  CHECK(round_trip(b) == b);
  ByteWriter w;
  put(w, a);
  put(w, b);
  std::string extra = w.take();
  ByteReader r(extra);
  CHECK(get<PartFact>(r) == a);
  CHECK(get<PartFact>(r) == b);
  CHECK(r.done());
}

TEST_CASE("wire: DirTask and ScanResult") {
  DirTask t{3, "root/sub", "/data/root/sub", 0x801};
  CHECK(round_trip(t) == t);
  std::deque<DirTask> batch{t, DirTask{4, "r2/x", "/d2/x", 77}};
  CHECK(round_trip(batch) == batch);
  ScanResult s;
  s.left = batch;
  CHECK(round_trip(s) == s);
}

TEST_CASE("wire: Setup") {
  Setup s{"no such directory", "backup_x.tar.gz", {Root{"/a", "a"}, Root{"/b/c", "c"}}};
  CHECK(round_trip(s) == s);
}

TEST_CASE("wire: which ranks see a directory, and forwarded writes") {
  SightCall c{"abc123", {0, 2, 5}};
  CHECK(round_trip(c) == c);
  SightReport r{"cannot create", {1, 0, 1}};
  CHECK(round_trip(r) == r);
  Sight s{"why", {"node1", "node2"}, {0, -1}};
  CHECK(round_trip(s) == s);
  Forwarded f{1ull << 40, std::string("\0block", 6)};
  CHECK(round_trip(f) == f);
  StagePlan p;
  p.error = "missing";
  p.tag = "t1";
  p.source.name = "a.tar.gz";
  p.source.files = {"/x/a.tar.gz"};
  p.source.sizes = {42};
  StagePlan q = round_trip(p);
  CHECK(q.error == p.error);
  CHECK(q.tag == p.tag);
  CHECK(q.source.name == p.source.name);
  CHECK(q.source.files == p.source.files);
  CHECK(q.source.sizes == p.source.sizes);
}

TEST_CASE("wire: RoundOrder and RoundReport") {
  RoundOrder o;
  o.cmd = RoundCmd::kFinish;
  o.settled = (uint64_t{1} << 42) + 3;
  o.offsets = {0, 512, uint64_t{1} << 50};
  o.rounds = {{1, 2}, {3}};
  o.give = {1, 3};
  o.give_to = {0, 2};
  CHECK(round_trip(o) == o);
  RoundReport r;
  r.problem = "cannot write";
  r.units = {sample_unit(1), sample_unit(2)};
  r.damaged = {"root/vanished", "root/shrunk"};
  CHECK(round_trip(r) == r);
  std::vector<FragmentHash> hashes{{2, std::string(64, 'f')}, {5, std::string(64, '0')}};
  CHECK(round_trip(hashes) == hashes);
}

TEST_CASE("wire: RankResults of the parallel restore") {
  RankResults r;
  r.fatal = "interrupted";
  r.signal = 15;
  r.entries = {sample_restored()};
  r.errors = {"e1", "e2"};
  r.lost = {"members from block 3"};
  r.implied = {"a", "a/b"};
  r.parts = {{1, 1000}, {2, 2000}};
  r.heads = {1, 2};
  r.order = {UnitOrder{7, "a/first", "a/last", false}};
  r.finished = 99;
  r.matched = {0, 3};
  CHECK(round_trip(r) == r);
}

TEST_CASE("wire: ArchiveSource, with and without its manifest") {
  ArchiveSource s;
  s.bucket = "bucket";
  s.files = {"dir/x.tar.gz.part0001", "dir/x.tar.gz.part0002"};
  s.sizes = {100, 200};
  s.manifest_path = "dir/x.tar.gz.manifest.json";
  s.name = "x.tar.gz";
  ArchiveSource back = round_trip(s);
  CHECK(back.bucket == s.bucket);
  CHECK(back.files == s.files);
  CHECK(back.sizes == s.sizes);
  CHECK(back.manifest_path == s.manifest_path);
  CHECK(back.name == s.name);
  CHECK(!back.manifest);

  Manifest m;
  m.tool_version = "1.2.3";
  m.format = "tar";
  m.codec = "gzip";
  m.archive = "x.tar.gz";
  m.archive_size = 300;
  m.fragments = {Fragment{"x.tar.gz.part0001", 100, std::string(64, 'a')}, Fragment{"x.tar.gz.part0002", 200, std::string(64, 'b')}};
  s.manifest = m;
  back = from_wire<ArchiveSource>(to_wire(s));
  REQUIRE(back.manifest);
  CHECK(manifest_to_json(*back.manifest) == manifest_to_json(m));
  ArchiveSource bad = s;
  bad.sizes.pop_back();
  CHECK_THROWS(from_wire<ArchiveSource>(to_wire(bad)));

  // an encrypted source's cipher travels (the payload key too; the identities stay on rank 0)
  auto c = std::make_shared<SourceCipher>();
  c->prefix = 123;
  c->plain_size = 456;
  c->key = std::make_shared<age::Secret>(std::string(32, 'k').data(), 32);
  m.encryption = "age";
  m.encrypted_size = 789;
  s.manifest = m;
  s.cipher = c;
  back = from_wire<ArchiveSource>(to_wire(s));
  REQUIRE(back.cipher);
  CHECK(back.cipher->prefix == 123);
  CHECK(back.cipher->plain_size == 456);
  CHECK(back.cipher->key->view() == std::string(32, 'k'));
  CHECK(back.manifest->encryption == "age");
  CHECK(back.manifest->encrypted_size == 789);
}

TEST_CASE("wire: RestoreWay") {
  RestoreWay w{RestoreWay::kZipMembers, {}, {"a/kept", "b/kept"}};
  w.source.name = "x.zip";
  w.source.files = {"/a/x.zip"};
  w.source.sizes = {123};
  RestoreWay back = round_trip(w);
  CHECK(back.mode == w.mode);
  CHECK(back.source.name == w.source.name);
  CHECK(back.source.files == w.source.files);
  CHECK(back.source.sizes == w.source.sizes);
  CHECK(back.leave == w.leave);
}

TEST_CASE("wire: PartReceipt (an uploaded part, to rank 0)") {
  PartReceipt r{"\"9b2cf535f27731c974343645a3985328\"", "2~upload-id/with+odd=chars"};
  CHECK(round_trip(r) == r);
}

TEST_CASE("wire: a hostile count ends at the truncation, not in a huge allocation") {
  ByteWriter w;
  w.u64(std::numeric_limits<uint64_t>::max());
  w.str("one");
  CHECK_THROWS(from_wire<std::vector<std::string>>(w.take()));
}

TEST_CASE("compact strings: an Entry's rare and shared texts read as strings and travel as strings") {
  RareString a;
  CHECK(a.empty());
  CHECK(a.str().empty());
  a = std::string("30 SCHILY.xattr.user.k=v\n");
  RareString b = a;  // a deep copy
  a.clear();
  CHECK(a.empty());
  CHECK(b.str() == "30 SCHILY.xattr.user.k=v\n");
  a = std::string();
  CHECK(a.empty());
  InternedString o1(std::string("alice:staff")), o2(std::string("alice:") + "staff"), o3;
  CHECK(o1 == o2);
  CHECK(&o1.str() == &o2.str());  // one copy of the text for every entry that has it
  CHECK(o3.empty());
  CHECK(o3.str().empty());
  Entry e = sample_entry(9);
  Entry back = round_trip(e);
  CHECK(back == e);
  CHECK(&back.owner.str() == &e.owner.str());
  // Rank 0 keeps one Entry per file (DESIGN §2: under 300 bytes a file): the rare fields are a
  // pointer each, not a 32-byte std::string.
  CHECK(sizeof(Entry) <= 160);
}
