//! Calls end to end: the FreeSWITCH peer offers calls to fsb24, phones ring, answer or fail, and
//! the Bitrix24 peer's card timeline shows who saw which card when.

use std::time::Duration;

use crate::support::app::World;
use crate::support::audio::{decode_mp3, mp3_beside, wav_secs};
use crate::support::esl_peer::caller::CallSpec;

const EMPLOYEE_ROUTE: &str = r#"
[[routes]]
destination = "9001"
target = { agent = "1001" }
"#;

fn spec(destination: &str) -> CallSpec {
    CallSpec {
        caller: "+79991234567".into(),
        destination: destination.into(),
        ..CallSpec::default()
    }
}

#[tokio::test]
async fn an_employee_call_shows_the_card_while_ringing_and_talking_then_finishes_with_the_recording()
 {
    let w = World::start(&[("1001", 11)], EMPLOYEE_ROUTE).await;
    w.fs.phone("1001")
        .answers_then_hangs_up(Duration::from_millis(500), Duration::from_secs(2));
    let caller = w.fs.offer_call(w.app.esl_addr, spec("9001")).await.unwrap();
    let external = format!("fs-{}", caller.uuid);

    let call = w.bx.finished_call(&external, true).await;
    assert_eq!((call.user_id, call.call_type, call.show), (11, 2, true));
    assert_eq!(call.phone, "+79991234567");
    assert_eq!(call.line.as_deref(), Some("74951234567"));
    let finish = call.finished.clone().unwrap();
    assert_eq!((finish.user_id, finish.status_code.as_str()), (11, "200"));
    // DURATION is the talk time: billsec, on whole epoch seconds as FreeSWITCH counts it, so
    // 2 s of talk reads 2 or 3.
    assert!((2..=3).contains(&finish.duration), "{finish:?}");

    // One card, for the employee, from the register until the finish.
    let timeline = w.bx.timeline(&call.call_id);
    assert_eq!(timeline.len(), 1, "{timeline:?}");
    assert_eq!(timeline[0].user, 11);
    assert_eq!(timeline[0].to, Some(finish.at));

    // The attached recording is an MP3 of the file FreeSWITCH wrote: the same talk, a fraction
    // of the size.
    let stored = w.bx.record_of(&call.call_id).unwrap();
    let wav_path = w.recordings().join(format!("{}.wav", caller.uuid));
    let wav = std::fs::read(&wav_path).unwrap();
    assert_eq!(stored.bytes, std::fs::read(mp3_beside(&wav_path)).unwrap());
    assert!(stored.filename.ends_with(".mp3"), "{}", stored.filename);
    let mp3 = decode_mp3(&stored.bytes);
    let (talk, ratio) = (wav_secs(&wav), stored.bytes.len() as f64 / wav.len() as f64);
    eprintln!(
        "recording: wav {} B, mp3 {} B, ratio {ratio:.3}; talk {talk:.3} s, mp3 {:.3} s",
        wav.len(),
        stored.bytes.len(),
        mp3.secs
    );
    assert_eq!(mp3.rate, 8000);
    assert!(
        (mp3.secs - talk).abs() <= 0.2,
        "mp3 {} s, talk {talk} s",
        mp3.secs
    );
    // Sanity only: the phone talked 2 s; the recording starts once the bridge is up.
    assert!((1.0..=3.0).contains(&mp3.secs), "{} s", mp3.secs);
    assert!(ratio <= 0.25, "mp3/wav {ratio}");
    w.app.shutdown().await;
}
