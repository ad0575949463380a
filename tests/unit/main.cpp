// doctest's main for the unit tests (in the UTF-8 locale pbackup itself uses).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "pbackup/pipeline.h"

int main(int argc, char** argv) {
  pbackup::use_utf8_locale();
  return doctest::Context(argc, argv).run();
}
