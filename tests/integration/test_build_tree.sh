#!/bin/bash
# A build tree is usable as it is: a program compiled against it with pkg-config
# (PKG_CONFIG_PATH=BUILD_DIR) and one built by CMake with funcmon_DIR=BUILD_DIR both run,
# with nothing installed, and their calls reach a funcmond (7 calls, 1 error each).
# Usage: test_build_tree.sh SOURCE_DIR BUILD_DIR FUNCMOND [SANITIZERS]
set -u
src=$1 build=$2 funcmond=$3 sanitizers=${4:-}
needs="cc cmake pkg-config curl jq" name=tree
. "$(dirname "$0")/funcmond_lib.sh"

# A sanitized libfuncmon needs its runtime in the program too.
cflags=""
[ -n "$sanitizers" ] && cflags="-fsanitize=$sanitizers"
user=$src/tests/integration/build_tree_user.c

start_funcmond
expect_calls() { # NAME: the profile's calls and errors once drained
    local got=""
    for _ in $(seq 100); do
        got=$(curl -s "$base/debug/profiles/tree_call?service=$1" | jq -r '"\(.call_count) \(.error_count)"' 2>/dev/null)
        [ "$got" = "7 1" ] && return 0
        sleep 0.05
    done
    fail "$1: calls and errors '$got', expected '7 1'"
}

# pkg-config
pc=$(PKG_CONFIG_PATH=$build pkg-config --cflags --libs funcmon) || fail "pkg-config does not find funcmon in $build"
# shellcheck disable=SC2086
cc $cflags -o "$dir/pc_user" "$user" $pc > "$dir/cc.log" 2>&1 || fail "cc with '$pc': $(cat "$dir/cc.log")"
FUNCMON_SERVICE=pc_user "$dir/pc_user" > /dev/null || fail "the pkg-config build does not run"
expect_calls pc_user

# CMake
mkdir -p "$dir/cm"
cat > "$dir/cm/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(tree_user C)
find_package(funcmon REQUIRED)
add_executable(cm_user $user)
target_link_libraries(cm_user PRIVATE funcmon::client)
CMAKE
cmake -S "$dir/cm" -B "$dir/cm/build" -Dfuncmon_DIR="$build" -DCMAKE_C_FLAGS="$cflags" > "$dir/cmake.log" 2>&1 ||
    fail "cmake with funcmon_DIR=$build: $(tail -15 "$dir/cmake.log")"
cmake --build "$dir/cm/build" > "$dir/cmake.log" 2>&1 || fail "cmake --build: $(tail -15 "$dir/cmake.log")"
FUNCMON_SERVICE=cm_user "$dir/cm/build/cm_user" > /dev/null || fail "the CMake build does not run"
expect_calls cm_user
echo "test_build_tree: ok"
