"""score --dicom-sr FOLDER: one DICOM Structured Report per scored DICOM instance, for a PACS to
file beside the image it describes.

Each report is a Comprehensive 3D SR holding highdicom's TID 1500 Measurement Report: a
measurement group per scored frame, referencing the source instance (and frame) by UID, with the
probability of each class (calibrated, as the predictions table holds them; the model's name and
version as the algorithm), the predicted class, the melanoma flag at the run's threshold and the
review flag as qualitative evaluations. Codes are dermspark's own (coding scheme 99DERMSPARK),
except yes/no (SNOMED CT). The report carries the source's patient and study modules, as DICOM
requires for a PACS to file it: it goes back to the hospital's archive, not into dermspark's
outputs, and nothing of it is logged. Written on the executors, each reading its sources'
headers (never their pixels) where the table's paths lead.
"""

import io

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SCHEME = "99DERMSPARK"
COLUMNS = ["path", "frame", "sop_instance_uid", "predicted_label", "melanoma_flag", "review"]


def write_reports(rows: DataFrame, folder: str, classes: list[str], model: tuple[str, str]) -> dict:
    """rows: this run's predictions. Returns how many reports were written and, for instances
    whose source could not be read again, how many failed."""
    wanted = rows.where(F.col("sop_instance_uid").isNotNull() & F.col("error").isNull()).select(
        *COLUMNS, *[f"prob_{name}" for name in classes]
    )

    def write(partition):
        import pandas as pd

        frame = pd.DataFrame([row.asDict() for row in partition])
        outcomes: list[str | None] = []
        for _, instance in frame.groupby("sop_instance_uid") if not frame.empty else []:
            try:
                _write_one(instance, folder, classes, model)
                outcomes.append(None)
            except Exception as error:  # noqa: BLE001 - counted with its kind; the predictions stand
                outcomes.append(f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}")
        return outcomes

    # An instance's frames all in one partition, so each instance gets one report.
    outcomes = wanted.repartition("sop_instance_uid").rdd.mapPartitions(write).collect()
    failures: dict[str, int] = {}
    for reason in filter(None, outcomes):
        failures[reason] = failures.get(reason, 0) + 1
    return {
        "folder": folder,
        "written": outcomes.count(None),
        "failed": sum(failures.values()),
        "failed_by_reason": failures,
    }


def _write_one(instance, folder: str, classes: list[str], model: tuple[str, str]) -> None:
    import pydicom
    from pydicom.uid import generate_uid

    from dermspark import storage
    from dermspark.files import read_local

    path = instance["path"].iloc[0]
    content = read_local(path) if path.startswith("file:") else storage.read_bytes(path)
    source = pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True)
    report = build_report(source, instance, classes, model, generate_uid(), generate_uid())
    buffer = io.BytesIO()
    report.save_as(buffer)
    storage.write_bytes(storage.join(folder, f"{source.SOPInstanceUID}.dcm"), buffer.getvalue())


def _source_image(source, frames: list[int] | None):
    """The source reference, with its frame where the SOP class is a multi-frame one (a
    single-frame class holding several frames, as some Secondary Captures do, is referenced
    whole; the group's tracking identifier names the frame)."""
    import highdicom as hd

    try:
        return hd.sr.SourceImageForMeasurementGroup.from_source_image(source, referenced_frame_numbers=frames)
    except TypeError:
        return hd.sr.SourceImageForMeasurementGroup.from_source_image(source)


def build_report(source, instance, classes: list[str], model: tuple[str, str], series_uid: str, sop_uid: str):
    """The SR for one source instance; instance: its rows (one per frame)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    def concept(code: str, meaning: str):
        return hd.sr.CodedConcept(code, SCHEME, meaning)

    def yes_no(value) -> hd.sr.CodedConcept:
        return codes.SCT.Yes if value else codes.SCT.No

    algorithm = hd.sr.AlgorithmIdentification(name=model[0], version=model[1])
    groups = []
    for _, row in instance.sort_values("frame", na_position="first").iterrows():
        frames = (
            None if row["frame"] is None or int(source.get("NumberOfFrames", 1) or 1) == 1 else [int(row["frame"]) + 1]
        )
        evaluations = [
            hd.sr.QualitativeEvaluation(
                concept("predicted-class", "Predicted class"), concept(row["predicted_label"], row["predicted_label"])
            )
        ]
        if row["melanoma_flag"] is not None:
            evaluations.append(
                hd.sr.QualitativeEvaluation(
                    concept("melanoma-flag", "Melanoma probability at or above the threshold"),
                    yes_no(row["melanoma_flag"]),
                )
            )
        if row["review"] is not None:
            evaluations.append(
                hd.sr.QualitativeEvaluation(concept("review-flag", "Flagged for review"), yes_no(row["review"]))
            )
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=hd.UID(), identifier=f"dermspark frame {row['frame'] or 0}"
                ),
                source_images=[_source_image(source, frames)],
                measurements=[
                    hd.sr.Measurement(
                        concept(f"probability-{name}", f"Probability of {name}"),
                        float(row[f"prob_{name}"]),
                        hd.sr.CodedConcept("1", "UCUM", "no units"),
                        algorithm_id=algorithm,
                    )
                    for name in classes
                ],
                qualitative_evaluations=evaluations,
            )
        )
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="dermspark", model_name=model[0])
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    content = hd.sr.MeasurementReport(
        observation_context=context,
        imaging_measurements=groups,
        procedure_reported=hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging study"),
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[source],
        content=content[0],
        series_instance_uid=series_uid,
        series_number=1,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer="dermspark",
    )
