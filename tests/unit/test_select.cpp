// The glob rules of --exclude, find and restore --only (src/core/select.cpp).
#include <doctest/doctest.h>

#include "core/select.h"

using namespace pbackup;

TEST_CASE("glob_match: * and ? stay in a component, ** crosses, classes and escapes") {
  CHECK(glob_match("*.o", "main.o"));
  CHECK_FALSE(glob_match("*.o", "src/main.o"));
  CHECK(glob_match("src/*.c", "src/a.c"));
  CHECK_FALSE(glob_match("src/*.c", "src/sub/a.c"));
  CHECK(glob_match("src/**.c", "src/sub/a.c"));
  CHECK(glob_match("src/**/a.c", "src/x/y/a.c"));
  CHECK(glob_match("src/**/a.c", "src/a.c"));  // **/ matches no directory too
  CHECK(glob_match("a?c", "abc"));
  CHECK_FALSE(glob_match("a?c", "a/c"));
  CHECK(glob_match("[ab]x", "bx"));
  CHECK_FALSE(glob_match("[ab]x", "cx"));
  CHECK(glob_match("[!ab]x", "cx"));
  CHECK(glob_match("\\*x", "*x"));
  CHECK_FALSE(glob_match("\\*x", "ax"));
  CHECK(glob_match("[x", "[x"));  // an unclosed bracket is a literal
  CHECK(glob_match("**", "a/b/c"));
  CHECK_FALSE(glob_match("", "a"));
  // a pathological pattern gives up instead of running for ages
  CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(200, 'a')));
}

TEST_CASE("pattern_matches_path: base names anywhere, anchored with '/', dirs only with trailing '/'") {
  CHECK(pattern_matches_path("*.o", "proj/src/main.o", false));
  CHECK(pattern_matches_path("cache/", "proj/a/cache", true));
  CHECK_FALSE(pattern_matches_path("cache/", "proj/a/cache", false));
  CHECK(pattern_matches_path("proj/build", "proj/build", true));
  CHECK_FALSE(pattern_matches_path("proj/build", "x/proj/build", true));
  CHECK(pattern_matches_path("/proj/build", "proj/build", true));
  CHECK(pattern_matches_path("**/c/*.tmp", "proj/a/b/c/x.tmp", false));
  CHECK_FALSE(pattern_matches_path("build", "proj/builder", true));
}

TEST_CASE("escape_name: control characters and backslashes are escaped") {
  CHECK(escape_name("a\nb") == "a\\nb");
  CHECK(escape_name("a\\b") == "a\\\\b");
  CHECK(escape_name(std::string("a\x01") + "b") == "a\\001b");
  CHECK(escape_name("plain/é") == "plain/é");
}

TEST_CASE("glob_match: a pathological pattern still answers right, fast") {
  // a give-up budget once answered "no" here: the first component alone exhausted it
  CHECK(glob_match("**/*a*a*a*a*a*a*a*a*b", std::string(30, 'a') + "/aaaaaaaab"));
  CHECK(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(4000, 'a') + "b"));
  CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", std::string(4000, 'a')));
  CHECK(glob_match("**a**a**a**a**a**a**b", std::string(2000, 'a') + "/" + std::string(2000, 'a') + "/b"));
  CHECK_FALSE(glob_match("**/**/**/**/**/x", std::string(3000, '/')));
  CHECK(glob_match("**/**/**/x", "x"));
  CHECK(glob_match("a/**/**/b", "a/b"));
  CHECK(glob_match("a/**/", "a/"));
  CHECK(glob_match("*", ""));
  CHECK_FALSE(glob_match("?", ""));
  CHECK(glob_match("a\\\\", "a\\"));
}
