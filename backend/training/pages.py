"""Pages under /training/ (staff only): the job list and a job's live progress.

The job page renders the job once and then follows it through the API (static training/job.js).
"""

import json

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, render

from backend.training.models import TrainingJob
from backend.training.serializers import TrainingJobDetailSerializer


@staff_member_required
def job_list(request):
    jobs = list(TrainingJob.objects.select_related("model_version__model", "requested_by")[:200])
    any_active = any(job.is_active for job in jobs)
    context = {"jobs": jobs, "any_active": any_active, "title": "Training jobs", "nav": "training"}
    return render(request, "training/job_list.html", context)


@staff_member_required
def job_detail(request, pk: int):
    job = get_object_or_404(TrainingJob.objects.select_related("model_version__model", "requested_by"), pk=pk)
    context = {
        "job": job,
        "initial": TrainingJobDetailSerializer(job).data,
        "params_json": json.dumps(job.params, sort_keys=True),
        "step_unit": job.step_unit,
        "title": f"Training job #{job.pk}",
        "nav": "training",
    }
    return render(request, "training/job_detail.html", context)
