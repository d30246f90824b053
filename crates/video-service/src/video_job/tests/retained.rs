//! Retention: what a done or failed job keeps in storage.

use super::*;

#[test]
fn a_done_job_keeps_only_its_own_outputs_and_the_source_unless_told() {
    for keep_source in [true, false] {
        let mut s = settings();
        s.keep_source = keep_source;
        let w = World::with(s);
        w.objects.insert("raw/app-a/v1/source.mp4", b"src".to_vec(), Some("video/mp4"));
        w.objects.insert("raw/app-a/v10/source.mp4", b"other video".to_vec(), Some("video/mp4"));
        w.notify("raw/app-a/v1/source.mp4");
        let first = w.grant().unwrap();
        let old = w.write_output(&output_of(&w), "seg1.m4s");
        w.fail(&lease_of(&first), true).unwrap();
        w.advance(BACKOFF_MS);
        let second = w.grant().unwrap();
        let kept = w.write_output(&output_of(&w), "seg1.m4s");
        w.complete(&lease_of(&second)).unwrap();
        assert!(!w.objects.contains(&old), "the earlier attempt's outputs go");
        assert!(w.objects.contains(&kept), "the completed one's stay");
        assert_eq!(w.objects.contains("raw/app-a/v1/source.mp4"), keep_source, "KEEP_SOURCE={keep_source}");
        assert!(w.objects.contains("raw/app-a/v10/source.mp4"), "another video is never touched");
    }
}

#[test]
fn the_outputs_of_a_failed_job_go_only_while_it_stands_failed() {
    let w = World::new();
    let job = {
        w.notify("raw/app-a/v1/source.mp4");
        w.job()
    };
    w.write_output("a", "seg1.m4s");
    // Queued again meanwhile: nothing is deleted.
    block_on(retention::after_end(&w.objects, &job, || false));
    assert_eq!(w.objects.keys("hls/").len(), 1);
    block_on(retention::after_end(&w.objects, &job, || true));
    assert!(w.objects.keys("hls/").is_empty());
}

/// A download (`downloads/{app}/{video}/{output}/`) follows its attempt as
/// the HLS files do: an earlier attempt's goes when the job is done, a
/// failed job's goes, and a deleted video loses it.
#[test]
fn downloads_follow_their_attempt_and_go_with_the_video() {
    let download = |output: &str| {
        let key = format!("downloads/app-a/v1/{output}/v1.mp4");
        assert!(media_core::keys::ObjectKey::parse(&key).is_some(), "{key}");
        key
    };
    let w = World::new();
    w.objects.insert("raw/app-a/v1/source.mp4", b"src".to_vec(), Some("video/mp4"));
    w.notify("raw/app-a/v1/source.mp4");
    let first = w.grant().unwrap();
    let old = download(&output_of(&w));
    w.objects.insert(&old, b"mp4".to_vec(), Some("video/mp4"));
    w.fail(&lease_of(&first), true).unwrap();
    w.advance(BACKOFF_MS);
    let second = w.grant().unwrap();
    let kept = download(&output_of(&w));
    w.objects.insert(&kept, b"mp4".to_vec(), Some("video/mp4"));
    w.objects.insert("downloads/app-a/v10/x/v10.mp4", b"other video".to_vec(), Some("video/mp4"));
    w.complete(&lease_of(&second)).unwrap();
    assert!(!w.objects.contains(&old), "the earlier attempt's download goes");
    assert!(w.objects.contains(&kept), "the completed one's stays");
    w.call(VideoOp::Delete).unwrap();
    assert!(!w.objects.contains(&kept), "a deleted video loses its download");
    assert!(w.objects.contains("downloads/app-a/v10/x/v10.mp4"), "another video is never touched");
}

#[test]
fn a_failed_job_s_download_goes_with_its_outputs() {
    let w = World::new();
    w.notify("raw/app-a/v1/source.mp4");
    let job = w.job();
    w.objects.insert("downloads/app-a/v1/a/v1.mp4", b"mp4".to_vec(), Some("video/mp4"));
    block_on(retention::after_end(&w.objects, &job, || false));
    assert_eq!(w.objects.keys("downloads/").len(), 1, "queued again meanwhile: kept");
    block_on(retention::after_end(&w.objects, &job, || true));
    assert!(w.objects.keys("downloads/").is_empty());
}
