"""Owns the S3 scenarios: objects written through cluster A's (and, active-
active, B's) `weed s3` gateway with boto3, replicated by `filer-sync sync
--once`, then compared through both gateways (see harness.assert_same). Each
test runs once per mode of the `pair` fixture: one-way and active-active."""

import hashlib
import os
import time

MiB = 1024 * 1024
SPECIAL_KEYS = ["with space.txt", "100% sure.txt", "a+b=c.txt", "café/é.txt",
                "日本/語 ファイル.txt", "mixed %2F+ é 日本.bin", "dir/sub/deep key.txt"]


def new_second():
    """Waits for the next whole second: S3 mtimes have whole seconds, so the
    next write of a key gets an mtime later than the previous one."""
    time.sleep(1.05 - time.time() % 1)


def put(s3, bucket, key, body, **kw):
    return s3.put_object(Bucket=bucket, Key=key, Body=body, **kw)


def tag(s3, bucket, key, **tags):
    s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={
        "TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})


def sha(body):
    return hashlib.sha256(body).hexdigest()


def obj(view, bucket, key):
    return view[bucket].get(f"key {key!r}")


def versions(view, bucket, key, kind="version"):
    """The `kind` ("version" or "delete marker") entries of `key` in a view."""
    prefix = f"{kind} {key!r} "
    return [v for k, v in view[bucket].items() if k.startswith(prefix)]


def multipart(s3, bucket, key, parts, **kw):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]
    done = [{"PartNumber": n, "ETag": s3.upload_part(
        Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=body)["ETag"]}
        for n, body in enumerate(parts, 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                 MultipartUpload={"Parts": done})


def test_puts_with_headers(pair, bucket):
    other = f"{bucket}-second"
    pair.first.create_bucket(Bucket=bucket)
    put(pair.first, bucket, "plain.txt", b"hello", ContentType="text/plain; charset=utf-8",
        Metadata={"owner": "alice", "Mixed-Case": "Value with spaces"})
    put(pair.first, bucket, "page.html", b"<p>x</p>", ContentType="text/html",
        CacheControl="max-age=60, public", ContentDisposition='attachment; filename="p.html"',
        ContentEncoding="identity")
    put(pair.first, bucket, "empty", b"")
    put(pair.first, bucket, "blob.bin", os.urandom(3 * MiB), ContentType="application/octet-stream")
    pair.sync_and_check(bucket)
    pair.second.create_bucket(Bucket=other)
    put(pair.second, other, "data.json", b'{"a": 1}', ContentType="application/json",
        Metadata={"source": "second"}, CacheControl="no-cache")
    put(pair.second, bucket, "later.txt", b"later", ContentType="text/csv",
        ContentDisposition="inline")
    view = pair.sync_and_check(bucket, other)
    assert obj(view, bucket, "page.html")["CacheControl"] == "max-age=60, public"
    assert obj(view, bucket, "plain.txt")["Metadata"] == {
        "owner": "alice", "mixed-case": "Value with spaces"}
    assert obj(view, other, "data.json")["Metadata"] == {"source": "second"}
    assert obj(view, bucket, "blob.bin")["ContentLength"] == 3 * MiB


def test_special_keys(pair, bucket):
    half = len(SPECIAL_KEYS) // 2
    pair.first.create_bucket(Bucket=bucket)
    for key in SPECIAL_KEYS[:half]:
        put(pair.first, bucket, key, key.encode(), Metadata={"k": "v"})
    pair.sync_and_check(bucket)
    for key in SPECIAL_KEYS[half:]:
        put(pair.second, bucket, key, key.encode(), ContentType="text/plain")
    view = pair.sync_and_check(bucket)
    assert sorted(k for k in view[bucket] if k.startswith("key ")) == sorted(
        f"key {k!r}" for k in SPECIAL_KEYS)
    assert all(obj(view, bucket, k)["BodySha256"] == sha(k.encode()) for k in SPECIAL_KEYS)


def test_copy_object(pair, bucket):
    target = f"{bucket}-target"
    s3 = pair.first
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=target)
    put(s3, bucket, "src 100%+é.txt", b"source body", ContentType="text/plain",
        Metadata={"origin": "src"}, CacheControl="max-age=5")
    s3.copy_object(Bucket=bucket, Key="copy.txt",
                   CopySource={"Bucket": bucket, "Key": "src 100%+é.txt"})
    s3.copy_object(Bucket=target, Key="replaced.txt", MetadataDirective="REPLACE",
                   ContentType="text/markdown", Metadata={"origin": "replaced"},
                   CopySource={"Bucket": bucket, "Key": "src 100%+é.txt"})
    pair.sync_and_check(bucket, target)
    pair.second.copy_object(Bucket=target, Key="日本 copy.txt",
                            CopySource={"Bucket": bucket, "Key": "copy.txt"})
    view = pair.sync_and_check(bucket, target)
    assert obj(view, bucket, "copy.txt")["Metadata"] == {"origin": "src"}
    assert obj(view, target, "replaced.txt")["ContentType"] == "text/markdown"
    assert obj(view, target, "日本 copy.txt")["BodySha256"] == sha(b"source body")


def test_deletes(pair, bucket):
    keys = ["keep.txt", "one.txt", "many 1.txt", "many+2%.txt", "dir/é 3.txt", "dir/keep.txt"]
    pair.first.create_bucket(Bucket=bucket)
    for key in keys:
        put(pair.first, bucket, key, key.encode())
    pair.sync_and_check(bucket)
    pair.second.delete_object(Bucket=bucket, Key="one.txt")
    gone = pair.second.delete_objects(Bucket=bucket, Delete={
        "Objects": [{"Key": k} for k in ("many 1.txt", "many+2%.txt", "dir/é 3.txt")]})
    assert not gone.get("Errors"), gone
    view = pair.sync_and_check(bucket)
    assert sorted(k for k in view[bucket] if k.startswith("key ")) == [
        "key 'dir/keep.txt'", "key 'keep.txt'"]


def test_multipart_upload(pair, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1000)]
    pair.first.create_bucket(Bucket=bucket)
    multipart(pair.first, bucket, "big/one.bin", parts, ContentType="application/x-one",
              Metadata={"parts": "3"})
    pair.sync_and_check(bucket)
    multipart(pair.second, bucket, "big/two é.bin", parts[1:], ContentType="video/mp4",
              CacheControl="max-age=9")
    view = pair.sync_and_check(bucket)
    one, two = obj(view, bucket, "big/one.bin"), obj(view, bucket, "big/two é.bin")
    assert one["ETag"].endswith('-3"') and one["BodySha256"] == sha(b"".join(parts))
    assert two["ETag"].endswith('-2"') and two["ContentLength"] == 5 * MiB + 1000
    assert one["Metadata"] == {"parts": "3"} and two["CacheControl"] == "max-age=9"


def test_tagging_after_replication(pair, bucket):
    pair.first.create_bucket(Bucket=bucket)
    for key in ["a.txt", "b.txt", "c.txt", "d é.txt"]:
        put(pair.first, bucket, key, key.encode(), Tagging="stage=new&team=x")
    pair.sync_and_check(bucket)
    # Metadata-only changes: the objects' mtimes stay as they were.
    tag(pair.first, bucket, "a.txt", stage="reviewed", by="first")
    tag(pair.second, bucket, "b.txt", stage="reviewed", by="second")
    tag(pair.second, bucket, "d é.txt", stage="ü", extra="a+b=c @x")
    pair.second.delete_object_tagging(Bucket=bucket, Key="c.txt")
    view = pair.sync_and_check(bucket)
    assert obj(view, bucket, "a.txt")["Tags"] == [("by", "first"), ("stage", "reviewed")]
    assert obj(view, bucket, "b.txt")["Tags"] == [("by", "second"), ("stage", "reviewed")]
    assert obj(view, bucket, "c.txt")["Tags"] == []


def test_versioned_bucket(pair, bucket):
    s3 = pair.first
    s3.create_bucket(Bucket=bucket)
    put(s3, bucket, "pre.txt", b"written before versioning")  # its "null" version
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.delete_object(Bucket=bucket, Key="pre.txt")
    for i in range(3):
        put(s3, bucket, "doc.txt", f"version {i}".encode(), ContentType=f"text/v{i}",
            Metadata={"n": str(i)})
    put(s3, bucket, "kept é.txt", b"kept")
    put(s3, bucket, "gone.txt", b"soon deleted")
    s3.delete_object(Bucket=bucket, Key="gone.txt")
    first = put(s3, bucket, "pruned.txt", b"pruned v1")["VersionId"]
    put(s3, bucket, "pruned.txt", b"pruned v2")
    s3.delete_object(Bucket=bucket, Key="pruned.txt", VersionId=first)
    view = pair.sync_and_check(bucket)
    assert view[bucket]["Versioning"] == "Enabled"
    assert obj(view, bucket, "gone.txt") is None
    for key in ("gone.txt", "pre.txt"):
        assert [m["IsLatest"] for m in versions(view, bucket, key, "delete marker")] == [True]
    assert [v["VersionId"] for v in versions(view, bucket, "pre.txt")] == ["null"]
    assert len(versions(view, bucket, "doc.txt")) == 3
    assert len(versions(view, bucket, "pruned.txt")) == 1

    new_second()
    second = pair.second
    put(second, bucket, "doc.txt", b"version 3", ContentType="text/v3")
    second.delete_object(Bucket=bucket, Key="kept é.txt")
    put(second, bucket, "gone.txt", b"back again")
    view = pair.sync_and_check(bucket)
    assert obj(view, bucket, "doc.txt")["BodySha256"] == sha(b"version 3")
    assert obj(view, bucket, "kept é.txt") is None
    assert obj(view, bucket, "gone.txt")["BodySha256"] == sha(b"back again")
    assert [v["IsLatest"] for v in versions(view, bucket, "gone.txt", "delete marker")] == [False]

    # Removing the delete marker brings the previous version back as latest.
    new_second()
    marker = second.list_object_versions(Bucket=bucket, Prefix="kept")["DeleteMarkers"][0]
    second.delete_object(Bucket=bucket, Key="kept é.txt", VersionId=marker["VersionId"])
    view = pair.sync_and_check(bucket)
    assert obj(view, bucket, "kept é.txt")["BodySha256"] == sha(b"kept")
    assert versions(view, bucket, "kept é.txt", "delete marker") == []


def test_incremental_changes(pair, bucket):
    s3 = pair.first
    s3.create_bucket(Bucket=bucket)
    for key in ["over.txt", "del.txt", "retag.txt", "meta.txt", "first-side.txt"]:
        put(s3, bucket, key, f"{key} v1".encode(), ContentType="text/plain",
            Metadata={"rev": "1"}, Tagging="rev=1")
    pair.sync_and_check(bucket)
    new_second()
    second = pair.second
    put(second, bucket, "over.txt", b"over v2 longer", ContentType="text/x-v2",
        Metadata={"rev": "2"})
    second.delete_object(Bucket=bucket, Key="del.txt")
    tag(second, bucket, "retag.txt", rev="2")
    second.copy_object(Bucket=bucket, Key="meta.txt", MetadataDirective="REPLACE",
                       CopySource={"Bucket": bucket, "Key": "meta.txt"},
                       ContentType="text/x-meta", Metadata={"rev": "2"})
    put(second, bucket, "new.txt", b"new")
    put(s3, bucket, "first-side.txt", b"first side v2")
    view = pair.sync_and_check(bucket)
    assert obj(view, bucket, "del.txt") is None
    assert obj(view, bucket, "over.txt")["Metadata"] == {"rev": "2"}
    assert obj(view, bucket, "retag.txt")["Tags"] == [("rev", "2")]
    assert obj(view, bucket, "meta.txt")["ContentType"] == "text/x-meta"
    assert obj(view, bucket, "first-side.txt")["BodySha256"] == sha(b"first side v2")


def test_concurrent_changes_converge(pair, bucket):
    """Both writers change the same keys in the same second (active-active:
    one on each cluster, a conflict): whichever version wins, both clusters
    must show the same one, and a versioned key keeps both new versions."""
    plain, versioned = bucket, f"{bucket}-v"
    pair.first.create_bucket(Bucket=plain)
    pair.first.create_bucket(Bucket=versioned)
    pair.first.put_bucket_versioning(Bucket=versioned,
                                     VersioningConfiguration={"Status": "Enabled"})
    for b in (plain, versioned):
        put(pair.first, b, "same.txt", b"base", Tagging="side=none")
    pair.sync_and_check(plain, versioned)
    new_second()
    for s3, side in ((pair.first, "first"), (pair.second, "second")):
        tag(s3, plain, "same.txt", side=side)
        put(s3, plain, "over.txt", f"overwritten by {side}".encode(), Metadata={"side": side})
        put(s3, versioned, "same.txt", f"version by {side}".encode())
    view = pair.sync_and_check(plain, versioned)
    assert len(versions(view, versioned, "same.txt")) == 3
