//! gRPC method descriptors of `filer_pb.SeaweedFiler` that filer-sync calls,
//! written by hand: a dozen constants are smaller than a stub generator and
//! need nothing at build time beyond the protobuf messages. Public so that
//! a test's mock filer serves the very methods the client calls.

use crate::pb::filer::*;
use grpcio::{Marshaller, Method, MethodType};

macro_rules! method {
    ($name:ident, $ty:ident, $path:literal, $req:ty, $resp:ty) => {
        pub const $name: Method<$req, $resp> = Method {
            ty: MethodType::$ty,
            name: concat!("/filer_pb.SeaweedFiler/", $path),
            req_mar: Marshaller {
                ser: grpcio::pb_ser,
                de: grpcio::pb_de,
            },
            resp_mar: Marshaller {
                ser: grpcio::pb_ser,
                de: grpcio::pb_de,
            },
        };
    };
}

method!(PING, Unary, "Ping", PingRequest, PingResponse);
method!(
    GET_FILER_CONFIGURATION,
    Unary,
    "GetFilerConfiguration",
    GetFilerConfigurationRequest,
    GetFilerConfigurationResponse
);
method!(
    LOOKUP_DIRECTORY_ENTRY,
    Unary,
    "LookupDirectoryEntry",
    LookupDirectoryEntryRequest,
    LookupDirectoryEntryResponse
);
method!(
    LIST_ENTRIES,
    ServerStreaming,
    "ListEntries",
    ListEntriesRequest,
    ListEntriesResponse
);
method!(
    CREATE_ENTRY,
    Unary,
    "CreateEntry",
    CreateEntryRequest,
    CreateEntryResponse
);
method!(
    STREAM_MUTATE_ENTRY,
    Duplex,
    "StreamMutateEntry",
    StreamMutateEntryRequest,
    StreamMutateEntryResponse
);
method!(
    UPDATE_ENTRY,
    Unary,
    "UpdateEntry",
    UpdateEntryRequest,
    UpdateEntryResponse
);
method!(
    DELETE_ENTRY,
    Unary,
    "DeleteEntry",
    DeleteEntryRequest,
    DeleteEntryResponse
);
method!(
    ATOMIC_RENAME_ENTRY,
    Unary,
    "AtomicRenameEntry",
    AtomicRenameEntryRequest,
    AtomicRenameEntryResponse
);
method!(
    ASSIGN_VOLUME,
    Unary,
    "AssignVolume",
    AssignVolumeRequest,
    AssignVolumeResponse
);
method!(
    LOOKUP_VOLUME,
    Unary,
    "LookupVolume",
    LookupVolumeRequest,
    LookupVolumeResponse
);
method!(
    SUBSCRIBE_METADATA,
    ServerStreaming,
    "SubscribeMetadata",
    SubscribeMetadataRequest,
    SubscribeMetadataResponse
);
method!(KV_GET, Unary, "KvGet", KvGetRequest, KvGetResponse);
method!(KV_PUT, Unary, "KvPut", KvPutRequest, KvPutResponse);
method!(
    DISTRIBUTED_LOCK,
    Unary,
    "DistributedLock",
    LockRequest,
    LockResponse
);
method!(
    FIND_LOCK_OWNER,
    Unary,
    "FindLockOwner",
    FindLockOwnerRequest,
    FindLockOwnerResponse
);
method!(
    DISTRIBUTED_UNLOCK,
    Unary,
    "DistributedUnlock",
    UnlockRequest,
    UnlockResponse
);
