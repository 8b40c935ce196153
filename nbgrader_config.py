"""nbgrader's configuration for the seqmem course.

The instructor writes assignments in solutions/ (nbgrader's source directory); `make assignments`
(nbgrader generate_assignment) writes the student versions into notebooks/ (the release directory).
Submissions, autograded copies and feedback go to nbgrader's usual folders at the repository root,
which git ignores.
"""
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades, NbGraderPreprocessor


class HideHiddenTestTracebacks(NbGraderPreprocessor):
    """In feedback, a failed hidden test shows its error message but not its traceback.

    IPython's traceback quotes the failing lines of the cell, which would reveal the hidden tests'
    code; the message of a ``seqmem.grading`` check already says what was expected and what came.
    """

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output['ename']}: {output['evalue']}"]
        return cell, resources


c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "seqmem"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# A student notebook autogrades in at most 60 s; a cell that runs longer than this (an endless loop)
# is interrupted and fails, and grading goes on with the next cell and the next student.
c.Execute.timeout = 30
c.Execute.interrupt_on_timeout = True
c.Execute.allow_errors = True

# Feedback shows students their results and the checks' messages, never the hidden tests' code.
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTestTracebacks, ClearHiddenTests,
                                    CSSHTMLHeaderPreprocessor]
