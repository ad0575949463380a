// The backup --resume journal reader (parse_journal, src/core/resume.cpp): a real journal is
// taken up; a damaged, foreign or hostile one comes back "not usable" with the reason.
#include <doctest/doctest.h>

#include <string>

#include "core/resume.h"

using namespace pbackup;

namespace {
const std::string kHeader =
    R"({"archive":"b.tar.gz","command":"6fff647eca8b9cbd8fa4e2818bed0e9a","pbackup_journal":1,"tag":"f99c2858d40b7cb9"})"
    "\n";
std::string block(uint64_t id, const std::string& offset, const std::string& size, const std::string& raw = "1101824") {
  return R"({"b":)" + std::to_string(id) + R"(,"offset":)" + offset + R"(,"print":"c4bccca29ba631eb52b1222f021781ef","raw":)" + raw +
         R"(,"sha256":"83e0509059051e2892db56485d91b28fb51fbb9b8dbb0bf39e818fc5b55e52ab","size":)" + size + "}\n";
}
JournalExpect expect(uint64_t blocks = 10) {
  JournalExpect e;
  e.same_command = [](const std::string& c) { return c == "6fff647eca8b9cbd8fa4e2818bed0e9a"; };
  e.blocks = blocks;
  e.differs = [](const JournalBlock& b, const std::string& print) -> std::string {
    return b.raw == 1101824 && print == "c4bccca29ba631eb52b1222f021781ef" ? "" : "block " + std::to_string(b.id) + " changed";
  };
  return e;
}
}  // namespace

TEST_CASE("journal: a real journal is taken up, its cut-short last line ignored") {
  const std::string text = kHeader + block(0, "0", "1100706") + block(1, "1100706", "1100541") +
                           R"({"damaged":["7372632f646174612f663032","ff00"]})" "\n";
  JournalRead r = parse_journal(text + R"({"b":2,"offs)", expect());
  CHECK(r.why == "");
  CHECK(r.tag == "f99c2858d40b7cb9");
  REQUIRE(r.blocks.size() == 2);
  CHECK(r.blocks[1].offset == 1100706);
  CHECK(r.blocks[1].raw == 1101824);
  CHECK(r.end == 1100706 + 1100541);
  CHECK(r.good_bytes == text.size());
  REQUIRE(r.damaged.size() == 2);
  CHECK(r.damaged[0] == "src/data/f02");
  CHECK(r.damaged[1] == std::string("\xff\0", 2));
  // chunk by chunk (one byte at a time) reads the same
  size_t at = 0;
  JournalRead c = parse_journal([&]() -> std::string_view { return at < text.size() ? std::string_view(text).substr(at++, 1) : ""; }, expect());
  CHECK(c.why == "");
  CHECK(c.blocks.size() == 2);
  CHECK(c.good_bytes == text.size());
}

TEST_CASE("journal: refused with the reason (empty, foreign, another command, changed, out of order, too long)") {
  CHECK(parse_journal("", expect()).why == "it is empty");
  CHECK(parse_journal(kHeader.substr(0, 20), expect()).why == "it is empty");
  CHECK(parse_journal("{\"pbackup_journal\":2}\n", expect()).why.find("line 1 is damaged (not a pbackup journal)") != std::string::npos);
  CHECK(parse_journal("[1,2]\n", expect()).why.find("line 1 is damaged") != std::string::npos);
  JournalExpect other = expect();
  other.same_command = [](const std::string&) { return false; };
  JournalRead r = parse_journal(kHeader + block(0, "0", "5"), other);
  CHECK(r.why.find("different command") != std::string::npos);
  CHECK(r.tag == "f99c2858d40b7cb9");  // its temporary files can still be removed
  CHECK(parse_journal(kHeader + block(0, "0", "5", "7"), expect()).why == "block 0 changed");
  CHECK(parse_journal(kHeader + block(0, "0", "5") + block(1, "0", "5"), expect()).why.find("line 3 is damaged (blocks out of order)") !=
        std::string::npos);
  CHECK(parse_journal(kHeader + block(1, "0", "5"), expect()).why.find("out of order") != std::string::npos);
  CHECK(parse_journal(kHeader + block(0, "0", "5") + block(1, "5", "5"), expect(1)).why.find("fewer than the 2 written") != std::string::npos);
  JournalExpect small = expect();
  small.max_line = 100;
  CHECK(parse_journal(kHeader + std::string(101, ' '), small).why == "its line 2 is too long");
}

TEST_CASE("journal: numbers are unsigned 64-bit integers, never converted (found by fuzz_journal)") {
  // 2^64 and more parse as a float: converting it to uint64_t is undefined (UBSan stopped there)
  CHECK(parse_journal(kHeader + block(0, "0", "5", "33333333333333333333333333"), expect()).why.find("raw is not an unsigned 64-bit integer") !=
        std::string::npos);
  CHECK(parse_journal(kHeader + block(0, "0", "5", "1e300"), expect()).why.find("line 2 is damaged (raw is not") != std::string::npos);
  // -1 read as 2^64-1: block 0 then covered the whole 64-bit archive
  JournalRead neg = parse_journal(kHeader + block(0, "0", "-1"), expect());
  CHECK(neg.why.find("size is not an unsigned 64-bit integer") != std::string::npos);
  CHECK(parse_journal(kHeader + block(0, "0", "5", "1101824.5"), expect()).why.find("raw is not") != std::string::npos);
  CHECK(parse_journal(kHeader + block(0, "-0.0", "5"), expect()).why.find("offset is not") != std::string::npos);
  std::string v1f = kHeader;
  v1f.replace(v1f.find("\"pbackup_journal\":1"), 19, "\"pbackup_journal\":1.0");
  CHECK(parse_journal(v1f, expect()).why.find("not a pbackup journal") != std::string::npos);
  CHECK(parse_journal(kHeader + block(0, "0", "5"), expect()).why == "");
}
