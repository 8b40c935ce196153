"""nbgrader's configuration for the seqmem course.

The instructor writes assignments in solutions/ (nbgrader's source directory); `make assignments`
(nbgrader generate_assignment) writes the student versions into notebooks/ (the release directory).
Submissions, autograded copies and feedback go to nbgrader's usual folders at the repository root,
which git ignores.

Autograding never runs student code in nbgrader's process: `SandboxedExecute` (in place of
nbgrader's Execute) runs the student's cells in a bubblewrap sandbox and the test cells here, from
the gradebook's copy, against the student's functions (see seqmem/grading/autograde.py and the
README's "What autograding guards against").

The hidden tests draw their inputs from a grading seed: set it outside the repository, in the
environment (`export SEQMEM_GRADING_SEED=...`) or in your own ~/.jupyter/nbgrader_config.py
(`c.SandboxedExecute.seed = "..."`); without one, each batch draws a fresh seed and logs it.
"""
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, DeduplicateIds, GetGrades,
                                    IgnorePattern, LimitOutput, OverwriteKernelspec, SaveAutoGrades)

try:  # without these, nbgrader would go on with its own Execute: student code unsandboxed
    from seqmem.grading.autograde import (FeedbackClearHiddenTests, QuietOverwriteCells, SandboxedExecute,
                                         SanitizeStudentMarkdown)
except Exception as err:  # noqa: BLE001 (nbgrader ignores a config file that raises an Exception)
    raise SystemExit(f"nbgrader_config.py: seqmem's sandboxed autograding cannot be loaded ({err!r}); "
                     "nbgrader stops here rather than grade with student code unsandboxed. Install the course's "
                     "environment (make test, or pip install -r requirements.txt) and run nbgrader from it.") from None

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "seqmem"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# A deleted test cell is put back (and graded); a changed one is restored from the source, and only
# then does the log warn.
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec, QuietOverwriteCells,
                                      CheckCellMetadata]
c.OverwriteCells.add_missing_cells = True
# The student's markdown loses any script or event handler before the formgrader shows it.
c.Autograde.autograde_preprocessors = [SandboxedExecute, SanitizeStudentMarkdown, IgnorePattern,
                                       ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                       CheckCellMetadata]

# A student notebook autogrades in at most 60 s; a cell that runs longer than 30 s (an endless loop)
# is stopped and fails, and grading goes on with the next cell and the next student.
c.SandboxedExecute.cell_timeout = 30
c.SandboxedExecute.item_timeout = 60
c.SandboxedExecute.notebook_timeout = 600

# Feedback shows students their results and the checks' messages, never the hidden tests' code.
c.GenerateFeedback.preprocessors = [GetGrades, FeedbackClearHiddenTests, CSSHTMLHeaderPreprocessor]
