// The tool's version, recorded in every manifest.
#pragma once
namespace pbackup {
inline constexpr const char* kVersion = "0.1.0";
}
