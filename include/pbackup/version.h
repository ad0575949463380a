// The tool's version (`pbackup --version`), recorded in every manifest: project(VERSION) of
// CMakeLists.txt, plus `git describe` when configured from a git checkout ("0.1.0 (git 2373b8e)").
#pragma once
namespace pbackup {
const char* version_string();
}
