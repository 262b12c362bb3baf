"""Regenerate `calico_dcos/devcluster/proto/mesos_v1.desc`, the devcluster's copy of the
Mesos v1 scheduler API schema, from an apache/mesos checkout.

    pip install grpcio-tools
    python scripts/gen_mesos_descriptors.py /path/to/apache/mesos

It compiles `include/mesos/v1/scheduler/scheduler.proto` (and `mesos/v1/mesos.proto`, which
it imports) into a serialized `FileDescriptorSet`; the devcluster loads it with the
`protobuf` runtime to parse calls exactly against the real messages (wire.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

OUT = Path(__file__).resolve().parent.parent / "calico_dcos/devcluster/proto/mesos_v1.desc"


def main(mesos_checkout: str) -> int:
    include = Path(mesos_checkout) / "include"
    if not (include / "mesos/v1/scheduler/scheduler.proto").exists():
        print(f"{include}/mesos/v1/scheduler/scheduler.proto not found", file=sys.stderr)
        return 2
    return protoc.main(
        ["protoc", f"-I{include}", "--include_imports", f"--descriptor_set_out={OUT}",
         "mesos/v1/scheduler/scheduler.proto"]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]) if len(sys.argv) == 2 else 2)
